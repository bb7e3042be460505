"""A VPC with no way out: isolated subnets, no NAT, no internet gateway, gateway endpoints only."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
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
            description="Thumbnail functions: HTTPS to the S3 and DynamoDB prefix lists only",
        )
        # Egress only to the address ranges of S3 and DynamoDB in this region: AWS's managed
        # prefix lists, the same ones the gateway endpoints' routes use. Their IDs differ per
        # region, so they are looked up at deploy time rather than written here.
        region = Stack.of(self).region
        self.prefix_list_lookups = []
        egress = []
        # The lookups share CDK's one provider function; its log group keeps the stack's retention.
        lookup_logs = logs.LogGroup(self, "PrefixListLookupLogs", retention=log_retention)
        for name, service in (("S3", "s3"), ("DynamoDB", "dynamodb")):
            lookup = cr.AwsCustomResource(
                self,
                f"{name}PrefixList",
                on_update=cr.AwsSdkCall(
                    service="EC2",
                    action="describeManagedPrefixLists",
                    parameters={
                        "Filters": [{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{region}.{service}"]}]
                    },
                    physical_resource_id=cr.PhysicalResourceId.of(f"{service}-managed-prefix-list"),
                    output_paths=["PrefixLists.0.PrefixListId"],
                ),
                policy=cr.AwsCustomResourcePolicy.from_statements(
                    [iam.PolicyStatement(actions=["ec2:DescribeManagedPrefixLists"], resources=["*"])]
                ),
                install_latest_aws_sdk=False,
                log_group=lookup_logs,
            )
            self.prefix_list_lookups.append(lookup)
            egress.append(
                {
                    "IpProtocol": "tcp",
                    "FromPort": 443,
                    "ToPort": 443,
                    "DestinationPrefixListId": lookup.get_response_field("PrefixLists.0.PrefixListId"),
                    "Description": f"HTTPS to {name} through its gateway endpoint",
                }
            )
        # Inline, as the group's only rules: a group created without inline egress rules gets
        # EC2's default allow-all egress, which separate egress resources would not remove.
        cfn_group = self.security_group.node.default_child
        assert isinstance(cfn_group, ec2.CfnSecurityGroup)
        cfn_group.add_property_override("SecurityGroupEgress", egress)
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
