"""A VPC with no way out: isolated subnets, no NAT, no internet gateway, gateway endpoints only."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct


class Network(Construct):
    """The functions reach S3 and DynamoDB through free gateway endpoints and nothing else."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention: logs.RetentionDays) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDB": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogs", retention=log_retention)
            ),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "Functions",
            vpc=self.vpc,
            allow_all_outbound=False,
            description="Thumbnail functions: HTTPS out only; the route tables reach only the gateway endpoints",
        )
        # Gateway endpoints are reached through route-table prefix lists; with no NAT and no
        # internet gateway, 443 out can only land on S3 or DynamoDB.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to the gateway endpoints")
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
