using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WebDefense.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class BackdoorScan : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "EstimatedAsrAfter",
                table: "Runs",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "EstimatedAsrBefore",
                table: "Runs",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "ModelChanged",
                table: "Runs",
                type: "boolean",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Outcome",
                table: "Runs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "OutcomeBasis",
                table: "Runs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "OutcomeSummary",
                table: "Runs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Scan",
                table: "Runs",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "EstimatedAsrAfter",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "EstimatedAsrBefore",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ModelChanged",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "Outcome",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "OutcomeBasis",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "OutcomeSummary",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "Scan",
                table: "Runs");
        }
    }
}
